"""The CLI's tables on plain results (no cluster): what a person reads."""

from __future__ import annotations

import io
from datetime import datetime, timezone

from rich.console import Console

from reconciler.cli.markdown import preview_comment
from reconciler.cli.output import describe_field, print_drift, print_status
from reconciler.objects import ObjectId
from reconciler.results import (Action, CommitInfo, DriftItem, DriftKind, DriftReport, EnvPreview, EnvStatus, FieldChange,
                                ObjectChange, StackPreview, StackStatus)


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


def test_a_multi_line_value_change_shows_the_lines_that_changed() -> None:
    old, new = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n", "a = 1\nb = 2\nc = 30\nd = 4\ne = 5\n"

    lines = describe_field(FieldChange(path="data.app.conf", desired=new, live=old))

    assert lines == ["~ data.app.conf:", "      b = 2", "    - c = 3", "    + c = 30", "      d = 4"]


def test_two_long_values_that_differ_late_are_shown_where_they_differ() -> None:
    """Cut at their start, both sides read the same and the change was invisible."""
    old = '{"endpoints": ["https://one.example.test", "https://two.example.test"], "timeout": 30}'
    new = old.replace("30", "45")

    [line] = describe_field(FieldChange(path="data.settings", desired=new, live=old))

    assert "30" in line and "45" in line and line.count("…") >= 2, line


def test_drift_in_a_multi_line_value_shows_gits_and_the_live_lines() -> None:
    report = DriftReport(env="dev", commit="a" * 40, items=[DriftItem(
        kind=DriftKind.MODIFIED, stack="app", id=ObjectId.parse("core/ConfigMap/ns/app"), first_seen=None,
        fields=[FieldChange(path="data.app.conf", desired="a = 1\nb = 2\n", live="a = 1\nb = 3\n")])])
    out = io.StringIO()

    print_drift(Console(file=out, width=200), report)

    text = out.getvalue()
    assert "Git (-) against live (+)" in text and "- b = 2" in text and "+ b = 3" in text


def test_a_pull_request_comment_shows_a_multi_line_change_as_a_diff_block() -> None:
    commit = CommitInfo(sha="b" * 40, author="Dev <dev@example.test>", message="tune", committed_at=datetime.now(timezone.utc))
    change = ObjectChange(id=ObjectId.parse("core/ConfigMap/ns/app"), action=Action.UPDATE, fields=[
        FieldChange(path="data.app.conf", desired="a = 1\nb = 20\n", live="a = 1\nb = 2\n")])
    preview = EnvPreview(env="prod", base=commit, revision=commit,
                         stacks=[StackPreview(stack="app", status="changed", changed=[change])])

    comment = preview_comment([preview])

    assert "  - `data.app.conf`:\n    ```diff\n     a = 1\n    -b = 2\n    +b = 20\n    ```" in comment, comment
