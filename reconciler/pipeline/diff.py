"""Desired-versus-live comparison that only looks at what Git sets, with known equivalences.

Server defaults never show up as drift because only fields present in the desired manifest are
compared. Equivalences normalised here: resource quantities (`1000m` == `1`, `1Gi` == `1024Mi`),
int-or-string ports (`8080` == `"8080"`), the default protocol TCP when matching port lists, empty
maps/lists versus absent fields, and Secret `stringData` versus the server's base64 `data`.
What survives is only a *suspect*; the engine confirms it with a server-side dry-run apply.
Secret values are masked in every FieldChange.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from reconciler.objects import K8sObject
from reconciler.results import FieldChange

MASK = "***"
_IGNORED_METADATA = {"creationTimestamp", "resourceVersion", "uid", "generation", "managedFields",
                     "selfLink", "finalizers", "ownerReferences", "deletionTimestamp"}
_QUANTITY_PARENTS = {"requests", "limits", "capacity", "allocatable", "hard", "storage"}
_PORT_KEYS = {"port", "targetPort", "containerPort", "nodePort", "hostPort"}
_LIST_KEYS = ("name", "containerPort", "port", "type", "mountPath", "devicePath", "ip", "key", "topologyKey")


def desired_hash(manifest: dict, key: bytes = b"") -> str:
    """A stable hash of a desired manifest: tells a Git change from drift on the same object.

    Keyed (HMAC-SHA-256 with the environment's key, kept in a Secret) wherever it is stored: an
    unkeyed hash of a Secret's manifest in a ConfigMap would let anyone who can read ConfigMaps test
    guesses of the Secret's values offline."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    digest = hmac.new(key, text, hashlib.sha256) if key else hashlib.sha256(text)
    return digest.hexdigest()[:16]


def object_hash(obj: K8sObject, key: bytes = b"") -> str:
    """`desired_hash` of the object's manifest, worked out once per object and key: a pass asks it of every
    object of a stack several times (the plan's Git-change test, the drift test, the stack's record)."""
    memo = ("desired_hash", key)
    known = obj.memo.get(memo)
    if known is None:
        known = obj.memo[memo] = desired_hash(obj.manifest, key)
    return known


def _as_quantity(value: Any) -> Decimal | None:
    try:
        return Decimal(parse_quantity(value))
    except (ValueError, TypeError, InvalidOperation):
        return None


def _scalar_equal(desired: Any, live: Any, key: str, parent: str) -> bool:
    if desired == live:
        return True
    if key in _PORT_KEYS or parent in _PORT_KEYS:
        return str(desired) == str(live)
    if parent in _QUANTITY_PARENTS or key == "storage":
        a, b = _as_quantity(desired), _as_quantity(live)
        return a is not None and a == b
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)) and not isinstance(desired, bool):
        return Decimal(str(desired)) == Decimal(str(live))
    return False


def _is_empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _item_key(item: Any) -> tuple | None:
    if not isinstance(item, dict):
        return None
    for key in _LIST_KEYS:
        if key in item:
            protocol = item.get("protocol", "TCP") if key in ("containerPort", "port") else ""
            return (key, str(item[key]), protocol)
    return None


def _compare(desired: Any, live: Any, path: str, key: str, parent: str, out: list[FieldChange]) -> None:
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            if not (_is_empty(desired) and live is None):
                out.append(FieldChange(path or ".", desired, live))
            return
        for child, value in desired.items():
            if value is None:
                continue  # an explicit null unsets the field: a removal, which fieldset.removed_paths finds
            child_path = f"{path}.{child}" if path else child
            if child not in live:
                if not _is_empty(value):
                    out.append(FieldChange(child_path, value, None))
                continue
            _compare(value, live[child], child_path, child, key, out)
        return
    if isinstance(desired, list):
        _compare_list(desired, live, path, key, out)
        return
    if not _scalar_equal(desired, live, key, parent):
        out.append(FieldChange(path, desired, live))


def _compare_list(desired: list, live: Any, path: str, key: str, out: list[FieldChange]) -> None:
    if not isinstance(live, list):
        if not (desired == [] and live is None):
            out.append(FieldChange(path, desired, live))
        return
    keys = [_item_key(item) for item in desired]
    live_keys = [_item_key(item) for item in live]
    if all(keys) and all(live_keys) and len(set(keys)) == len(keys):
        by_key = dict(zip(live_keys, live))
        if len(desired) != len(live) and set(live_keys) - set(keys):
            out.append(FieldChange(f"{path}[length]", len(desired), len(live)))
        for item_key, item in zip(keys, desired):
            label = item_key[1]
            if item_key not in by_key:
                out.append(FieldChange(f"{path}[{label}]", item, None))
            else:
                _compare(item, by_key[item_key], f"{path}[{label}]", key, key, out)
        return
    if len(desired) != len(live):
        out.append(FieldChange(path, desired, live))
        return
    for index, (item, live_item) in enumerate(zip(desired, live)):
        _compare(item, live_item, f"{path}[{index}]", key, key, out)


def secret_view(manifest: dict) -> dict:
    """A Secret with `stringData` folded into base64 `data`, as the server stores it."""
    view = dict(manifest)
    string_data = view.pop("stringData", None) or {}
    if string_data:
        data = dict(view.get("data") or {})
        for name, value in string_data.items():
            data[name] = base64.b64encode(str(value).encode()).decode()
        view["data"] = data
    return view


def compare(desired: dict, live: dict) -> list[FieldChange]:
    """Fields Git sets whose live value differs (after normalisation), Secret values masked."""
    if desired.get("kind") == "Secret":
        desired = secret_view(desired)
    meta = {k: v for k, v in (desired.get("metadata") or {}).items() if k not in _IGNORED_METADATA}
    body = {k: v for k, v in desired.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    out: list[FieldChange] = []
    _compare({"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}},
             live.get("metadata") or {}, "metadata", "metadata", "", out)
    _compare(body, live, "", "", "", out)
    return mask_secret_changes(desired, out)


def project(desired: Any, other: Any) -> Any:
    """`other` cut down to the shape of `desired`: the fields Git sets, with the server's values."""
    if isinstance(desired, dict) and isinstance(other, dict):
        return {k: project(v, other[k]) for k, v in desired.items() if k in other}
    if isinstance(desired, list) and isinstance(other, list):
        keys = [_item_key(i) for i in desired]
        other_keys = [_item_key(i) for i in other]
        if all(keys) and all(other_keys):
            by_key = dict(zip(other_keys, other))
            return [project(item, by_key[k]) for k, item in zip(keys, desired) if k in by_key]
        return [project(d, o) for d, o in zip(desired, other)]
    return other


def mask_secret_changes(manifest: dict, changes: list[FieldChange]) -> list[FieldChange]:
    if manifest.get("kind") != "Secret":
        return changes
    masked = []
    for change in changes:
        if change.path.startswith(("data", "stringData")):
            masked.append(FieldChange(change.path, MASK if change.desired is not None else None,
                                      MASK if change.live is not None else None))
        else:
            masked.append(change)
    return masked


def mask_manifest(manifest: dict) -> dict:
    """A copy safe to print or log: Secret values replaced by ***."""
    if manifest.get("kind") != "Secret":
        return manifest
    copy = dict(manifest)
    for key in ("data", "stringData"):
        if isinstance(copy.get(key), dict):
            copy[key] = {name: MASK for name in copy[key]}
    return copy


def manifest_changes(old: dict, new: dict) -> list[FieldChange]:
    """Every field that differs between two renders of one object, added, removed or changed (a preview
    compares Git with Git, so nothing is normalised). `desired` is the new value, `live` the old one;
    Secret values masked."""
    out: list[FieldChange] = []
    _both(old, new, "", out)
    return mask_secret_changes(new if new.get("kind") == "Secret" else old, out)


def _both(old: Any, new: Any, path: str, out: list[FieldChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(FieldChange(sub, None, old[key]))
            elif key not in old:
                out.append(FieldChange(sub, new[key], None))
            else:
                _both(old[key], new[key], sub, out)
    elif isinstance(old, list) and isinstance(new, list) and old != new:
        old_keys, new_keys = [_item_key(i) for i in old], [_item_key(i) for i in new]
        if all(old_keys) and all(new_keys) and len(set(old_keys)) == len(old) and len(set(new_keys)) == len(new):
            found: list[FieldChange] = []  # items matched by name (or port, key...), as `containers[web].image`
            _both({k[1]: i for k, i in zip(old_keys, old)}, {k[1]: i for k, i in zip(new_keys, new)}, "", found)
            for change in found:
                label, _, rest = change.path.partition(".")
                out.append(FieldChange(f"{path}[{label}]" + (f".{rest}" if rest else ""), change.desired, change.live))
        elif len(old) == len(new):
            for index, (a, b) in enumerate(zip(old, new)):
                _both(a, b, f"{path}[{index}]", out)
        else:
            out.append(FieldChange(path, new, old))
    elif old != new:
        out.append(FieldChange(path, new, old))
