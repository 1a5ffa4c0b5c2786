"""Which fields our field manager owns on a live object, and which of them Git no longer sets.

Server-side apply records, per field manager, the set of fields it owns (`managedFields`,
format `FieldsV1`): `f:<name>` for a map key, `k:{json}` for a list item found by its merge keys,
`v:<json>` for an item of a set, `i:<n>` for an item by position, and `.` for "the item itself".
A field we own that the desired manifest no longer sets is a field the next apply *removes*: that
is how a Git change that only deletes fields (a label, an annotation, a `lifecycle` block) is seen
without keeping the previous manifest anywhere. The walk is schema-free: the merge keys are in the
field set itself, so custom resources work the same way as built-in kinds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler.kube.takeover import merge_fields

MISSING = object()
"""A lookup found nothing at the path."""

_TOP_LEVEL_SKIPPED = {"f:apiVersion", "f:kind", "f:status"}
_DEFAULTED_KEYS = {"protocol": "TCP"}  # merge-key fields the server fills in when a manifest omits them


@dataclass(frozen=True)
class OwnedPath:
    """A field we own that Git dropped: `path` for people, `steps` to find its value in any object."""

    path: str
    steps: tuple[tuple[str, Any], ...]


def owned_fields(live: dict, manager: str) -> dict:
    """The union of the FieldsV1 sets `manager` holds through apply operations on the main resource."""
    merged: dict = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply" or entry.get("subresource"):
            continue
        merge_fields(merged, entry.get("fieldsV1") or {})
    return merged


def removed_paths(fields: dict, desired: dict) -> list[OwnedPath]:
    """Owned fields that `desired` no longer sets (an explicit null counts as not set)."""
    out: list[OwnedPath] = []
    top = {k: v for k, v in fields.items() if k not in _TOP_LEVEL_SKIPPED}
    _walk(top, desired, "", (), out)
    return out


def _walk(fields: dict, desired: Any, path: str, steps: tuple, out: list[OwnedPath]) -> None:
    for token, children in fields.items():
        if token == ".":
            continue
        step, label = _parse(token)
        child_path = _join(path, step, label)
        child_steps = steps + (step,)
        value = lookup_step(desired, step)
        if value is MISSING or value is None:
            out.append(OwnedPath(child_path, child_steps))
        elif isinstance(children, dict) and children:
            _walk(children, value, child_path, child_steps, out)


def _parse(token: str) -> tuple[tuple[str, Any], str]:
    prefix, _, rest = token.partition(":")
    if prefix == "f":
        return ("f", rest), rest
    if prefix == "k":
        keys = json.loads(rest)
        label = keys.get("name", next(iter(keys.values()), "")) if isinstance(keys, dict) else rest
        return ("k", keys), str(label)
    if prefix == "v":
        value = json.loads(rest)
        return ("v", value), json.dumps(value) if not isinstance(value, str) else value
    if prefix == "i":
        return ("i", int(rest)), rest
    return ("f", token), token


def _join(path: str, step: tuple[str, Any], label: str) -> str:
    if step[0] == "f":
        return f"{path}.{label}" if path else label
    return f"{path}[{label}]"


def lookup_step(obj: Any, step: tuple[str, Any]) -> Any:
    kind, key = step
    if kind == "f":
        return obj.get(key, MISSING) if isinstance(obj, dict) else MISSING
    if not isinstance(obj, list):
        return MISSING
    if kind == "i":
        return obj[key] if 0 <= key < len(obj) else MISSING
    if kind == "v":
        return next((item for item in obj if item == key), MISSING)
    return next((item for item in obj if _matches(item, key)), MISSING)


def _matches(item: Any, keys: dict) -> bool:
    if not isinstance(item, dict):
        return False
    for name, wanted in keys.items():
        value = item.get(name, _DEFAULTED_KEYS.get(name, MISSING))
        if value is MISSING or str(value) != str(wanted):
            return False
    return True


def lookup(obj: Any, steps: tuple[tuple[str, Any], ...]) -> Any:
    """The value at `steps` in `obj`, or MISSING."""
    for step in steps:
        obj = lookup_step(obj, step)
        if obj is MISSING:
            return MISSING
    return obj
