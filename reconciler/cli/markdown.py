"""`reconciler preview -o markdown`: a pull-request comment.

One summary row per environment, then per changed stack a collapsed `<details>` block with the
objects added, changed (field paths, old -> new; a multi-line text as a diff block), pruned and kept,
and the policy verdicts. Secret values arrive masked from the preview; values are cut short and
escaped so no manifest text can break the table or the HTML around it.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from reconciler.cli.output import around_difference, text_change
from reconciler.results import EnvPreview, StackPreview

_FIELDS_SHOWN = 8
_OBJECTS_SHOWN = 50
_VERDICT = {0: "no change", 1: "changes", 2: ":x: error or new enforced violations"}


def preview_comment(previews: list[EnvPreview]) -> str:
    first = previews[0]
    base = first.base.short if first.base else "nothing"
    lines = [f"### Reconciler preview of `{first.revision.short}` against `{base}`", "",
             "| environment | re-applied stacks | added | changed | pruned | policy: new / fixed / still | result |",
             "|---|---|---|---|---|---|---|"]
    for result in previews:
        lines.append(_summary_row(result))
    for result in previews:
        lines += _details(result)
    return "\n".join(lines) + "\n"


def _summary_row(result: EnvPreview) -> str:
    def total(attr: str) -> int:
        return sum(len(getattr(s, attr)) for s in result.stacks)

    reapplied = ", ".join(s.stack for s in result.stacks if s.reapplied) or "none"
    enforced = len(result.new_blocking)
    policy = (f"{total('new_violations')} ({enforced} enforced) / {total('fixed_violations')} / "
              f"{total('still_violations')}")
    return (f"| **{_cell(result.env)}** | {_cell(reapplied)} | {total('added')} | {total('changed')} | "
            f"{total('pruned')} | {policy} | {_VERDICT[result.exit_code]} |")


def _details(result: EnvPreview) -> list[str]:
    lines: list[str] = []
    for stack in result.stacks:
        if not (stack.reapplied or stack.error or stack.new_violations or stack.fixed_violations or stack.kept):
            continue
        summary = (f"<b>{html.escape(result.env)}</b> / <code>{html.escape(stack.stack)}</code>: {stack.status}, "
                   f"{len(stack.added)} added, {len(stack.changed)} changed, {len(stack.pruned)} pruned")
        lines += ["", f"<details><summary>{summary}</summary>", ""]
        lines += _stack_body(stack)
        lines += ["", "</details>"]
    return lines


def _stack_body(stack: StackPreview) -> list[str]:
    body: list[str] = []
    if stack.error:
        body.append(f"**Error:** {_text(stack.error)}")
    if stack.waits_on:
        body.append(f"**Waits for:** {', '.join(stack.waits_on)} (re-applied first)")
    for title, changes in (("Added", stack.added), ("Changed", stack.changed), ("Pruned", stack.pruned)):
        if changes:
            body += ["", f"**{title}**"]
            for change in changes[:_OBJECTS_SHOWN]:
                body.append(f"- `{_code(str(change.id))}`")
                for f in change.fields[:_FIELDS_SHOWN]:
                    body += _field_lines(f)
            if len(changes) > _OBJECTS_SHOWN:
                body.append(f"- … and {len(changes) - _OBJECTS_SHOWN} more")
    for title, items in (("Handed over", stack.moved_in), ("Kept in the cluster", stack.kept),
                         ("What the sync after the merge restores (drift, missing objects)", stack.drift_overwritten)):
        if items:
            body += ["", f"**{title}**"] + [f"- {_text(item)}" for item in items[:_OBJECTS_SHOWN]]
    for title, violations in (("New policy violations", stack.new_violations), ("Fixed", stack.fixed_violations),
                              ("Still present", stack.still_violations)):
        if violations:
            body += ["", f"**{title}**"] + [f"- {v.mode} `{_code(v.rule)}` on `{_code(v.object)}`: {_text(v.message)}"
                                            for v in violations[:_OBJECTS_SHOWN]]
    return body


def _field_lines(change: Any) -> list[str]:
    """`path`: old → new; a multi-line text as a diff block of its changed lines, and two long one-line values
    cut where they differ (cut at their start, a reviewer saw the same text on both sides)."""
    old, new = change.live, change.desired
    if (lines := text_change(old, new)) is not None:
        diff = [line[0] + line[2:] if line[0] in "+-" else line[1:] for line in lines]
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", "\n".join(diff))), default=0))
        return [f"  - `{_code(change.path)}`:", f"    {fence}diff", *(f"    {line}" for line in diff), f"    {fence}"]
    if isinstance(old, str) and isinstance(new, str):
        old, new = around_difference(old, new)
    return [f"  - `{_code(change.path)}`: {_value(old)} → {_value(new)}"]


def _value(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return f"`{_code(text if len(text) <= 60 else text[:59] + '…')}`"


def _code(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ")


def _text(text: str) -> str:
    return html.escape(" ".join(text.split()))


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")
