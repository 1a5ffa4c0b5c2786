"""Human and machine views of pass results, drift reports and status: tables (rich) and JSON.

Secret values never reach here unmasked (diff masks them), so every view is safe to print or post.
Text from Git, the API server or a person (reasons, commit messages, names) goes through `escape`
wherever rich reads markup: rich took `[name="A"]` in an API server's answer for a style and dropped
it, and a commit message holding `[/b]` ended the command in a MarkupError traceback.
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler.results import Action, DriftReport, EnvStatus, PassResult, StackState, to_jsonable

_STATE_STYLE = {
    StackState.APPLIED: "green", StackState.UNCHANGED: "dim", StackState.PLANNED: "yellow",
    StackState.BLOCKED: "magenta", StackState.SUSPENDED: "yellow", StackState.HELD: "yellow", StackState.FAILED: "red", StackState.PENDING: "dim",
}
_ACTION_MARK = {Action.CREATE: "+", Action.UPDATE: "~", Action.PRUNE: "-", Action.UNCHANGED: " "}


def as_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False, default=str)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) or "\n" in value else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line_diff(old: str, new: str, limit: int = 40) -> list[str]:
    """A multi-line value's change as its changed lines with one line around each (`-`, `+`, ` `), as `git
    diff` shows a file, at most `limit` lines: printed whole, a config file's three-line edit was unreadable."""
    lines = []
    for line in list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1))[2:]:
        lines.append("  …" if line.startswith("@@") else f"{line[0]} {line[1:]}")
    lines = lines[1:] if lines and lines[0] == "  …" else lines
    return lines if len(lines) <= limit else [*lines[:limit], f"  … ({len(lines) - limit} more lines)"]


def around_difference(old: str, new: str, limit: int = 60) -> tuple[str, str]:
    """Two long one-line values cut to where they differ: cut at their start, they read the same."""
    start = len(os.path.commonprefix([old, new]))
    start = max(0, start - 20) if start > limit - 20 else 0
    lead = "…" if start else ""
    return _short(lead + old[start:], limit), _short(lead + new[start:], limit)


def text_change(old: Any, new: Any) -> list[str] | None:
    """A multi-line text's change as its changed lines (`line_diff`); None for values shown on one line."""
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        return line_diff(old, new)
    return None


def _one_line(old: Any, new: Any) -> tuple[str, str]:
    """Two values on one line each: two texts cut where they differ, anything else cut short."""
    return around_difference(old, new) if isinstance(old, str) and isinstance(new, str) else (_short(old), _short(new))


def print_pass(console: Console, result: PassResult, verbose: bool = False) -> None:
    commit = f"{result.commit.short} {result.commit.message!r} by {result.commit.author}" if result.commit else "-"
    title = "plan" if result.dry_run else "sync"
    console.print(f"[bold]{title}[/bold] env [bold]{escape(result.env)}[/bold] at {escape(commit)}  (run {result.run_id})")
    if result.env_file:
        console.print(f"environment file: {result.env_file}", highlight=False, markup=False)
    if result.error:
        console.print(f"[red]error:[/red] {escape(result.error)}")
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("wave", "stack", "state", "create", "update", "prune", "violations", "seconds", "reason"):
        table.add_column(column)
    for stack in result.stacks:
        counts = {a: sum(1 for c in stack.changes if c.action is a) for a in Action}
        style = _STATE_STYLE.get(stack.state, "")
        table.add_row(str(stack.wave), escape(stack.stack), f"[{style}]{stack.state.value}[/{style}]",
                      str(counts[Action.CREATE]), str(counts[Action.UPDATE]), str(counts[Action.PRUNE]),
                      str(len(stack.violations)), f"{stack.duration_s:.1f}", escape(stack.reason))
    console.print(table)
    for stack in result.stacks:
        print_changes(console, stack.stack, stack.changed, verbose)
        for violation in stack.violations:
            mode = "[red]enforce[/red]" if violation.mode == "enforce" and not violation.excepted_by else violation.mode
            console.print(f"  {escape(stack.stack)}: policy {mode} "
                          + escape(f"{violation.rule} {violation.object}: {violation.message}"))
    _print_rollbacks(console, result)
    console.print(f"API requests: {result.total_requests} {dict(sorted(result.api_requests.items()))}")


def _print_rollbacks(console: Console, result: PassResult) -> None:
    for rollback in result.rollbacks:
        how = "automatic rollback" if rollback.automatic else "rollback"
        frm = f" from {rollback.from_commit[:10]}" if rollback.from_commit else ""
        outcome = "[green]healthy[/green]" if rollback.ok else "[red]did not succeed[/red]"
        console.print(escape(f"{how} of {', '.join(rollback.stacks)}{frm} to {rollback.to_commit[:10]}: ") + outcome)
    for notice in result.notices:
        console.print(f"[yellow]note:[/yellow] {escape(notice)}", highlight=False)


_SUMMARY_AFTER = 12


def print_changes(console: Console, stack: str, changes, verbose: bool) -> None:
    shown = changes if verbose or len(changes) <= _SUMMARY_AFTER else changes[:_SUMMARY_AFTER]
    if len(shown) < len(changes):
        console.print(f"  {stack}: {len(changes)} changes, the first {len(shown)} shown (-v shows all)", markup=False)
    for change in shown:
        where = f"  ({change.source_file})" if change.source_file else ""
        console.print(f"  {_ACTION_MARK[change.action]} {stack}: {change.id}{where}", highlight=False, markup=False)
        for field in change.fields[: None if verbose else 8]:
            for line in describe_field(field):
                console.print(f"      {line}", highlight=False, markup=False)


def describe_field(field) -> list[str]:
    """`- path: old` for a field the apply removes, `+ path: new` for one it adds, `~ path: old -> new`; a
    multi-line text's change as its changed lines under `~ path:`."""
    if field.desired is None and field.live is not None:
        return [f"- {field.path}: {_short(field.live)}"]
    if field.live is None:
        return [f"+ {field.path}: {_short(field.desired)}"]
    if (lines := text_change(field.live, field.desired)) is not None:
        return [f"~ {field.path}:", *(f"    {line}" for line in lines)]
    old, new = _one_line(field.live, field.desired)
    return [f"~ {field.path}: {old} -> {new}"]


def print_drift(console: Console, report: DriftReport) -> None:
    console.print(f"[bold]drift[/bold] env [bold]{escape(report.env)}[/bold] against {report.commit[:10] if report.commit else '-'}")
    if not report.items:
        console.print("no drift: the cluster matches what each stack last applied")
        return
    for item in report.items:
        since = f" (since {item.first_seen:%Y-%m-%d %H:%M}Z)" if item.first_seen else ""
        console.print(f"  {item.kind.value:<9} {item.stack}: {item.id}{since}", highlight=False, markup=False)
        for field in item.fields:
            for line in _drift_lines(field):
                console.print(f"      {line}", highlight=False, markup=False)


def _drift_lines(field) -> list[str]:
    """`path: Git x, live y`; a multi-line text as its lines that differ (`-` Git's, `+` live)."""
    if (lines := text_change(field.desired, field.live)) is not None:
        return [f"{field.path}: Git (-) against live (+)", *(f"    {line}" for line in lines)]
    git, live = _one_line(field.desired, field.live)
    return [f"{field.path}: Git {git}, live {live}"]


def print_status(console: Console, status: EnvStatus, history: bool = False) -> None:
    table = Table(title=f"env {status.env}", box=None, header_style="bold")
    for column in ("stack", "commit", "state", "healthy", "drift", "violations", "last run (UTC)", "pinned", "reason"):
        table.add_column(column)
    for stack in status.stacks:
        pinned = f"at {stack.pinned['revision'][:10]} by {stack.pinned['by']}" if stack.pinned else "-"
        commit = (stack.commit or "-")[:10] + (f" (failed at {stack.failed_commit[:10]})" if stack.failed_commit else "")
        state = "suspended" if stack.suspended else stack.state or "never run"
        table.add_row(escape(stack.stack), commit, escape(state),
                      {True: "yes", False: "no", None: "-"}[stack.healthy], str(stack.drift_count),
                      str(stack.violations), f"{stack.last_run:%Y-%m-%d %H:%M:%S}" if stack.last_run else "-",
                      escape(pinned), escape(stack.suspended or stack.reason))
    console.print(table)
    if status.suspended:
        console.print(f"[yellow]{escape(status.suspended)}[/yellow]; `reconciler resume -e {escape(status.env)}` lifts it",
                      highlight=False)
    for line in status.windows:
        console.print(f"sync window {line}", highlight=False, markup=False)
    if status.env_file:
        console.print(f"environment file: {status.env_file}", highlight=False, markup=False)
    if any(s.pinned for s in status.stacks):
        console.print(f"[yellow]pinned:[/yellow] the branch head (was {(status.pinned_head or '-')[:10]} when pinned) "
                      f"is not applied to pinned stacks until `reconciler unpin -e {escape(status.env)}`", highlight=False)
    for stack in status.stacks if history else []:
        print_history(console, stack.stack, stack.history)


def print_history(console: Console, stack: str, history: list[dict]) -> None:
    """The commits a stack applied, newest first: commit, result, health, when, author, message."""
    table = Table(title=f"history of {stack}", box=None, header_style="bold", title_justify="left")
    for column in ("commit", "result", "healthy", "applied at (UTC)", "author", "message"):
        table.add_column(column)
    for entry in history:
        result = entry.get("result", "-") + (" (pinned)" if entry.get("pinned") else "")
        if entry.get("rolled_back_to"):
            result += f", rolled back to {entry['rolled_back_to'][:10]}"
        table.add_row(escape(str(entry.get("commit", ""))[:10]), escape(result),
                      {True: "yes", False: "no"}.get(entry.get("healthy"), "-"),
                      escape(str(entry.get("at", "-"))[:19].replace("T", " ")),
                      escape(str(entry.get("author", "")).split(" <")[0]), escape(str(entry.get("message", ""))), style=None)
    console.print(table)
