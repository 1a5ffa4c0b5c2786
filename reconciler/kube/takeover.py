"""Taking over the fields `kubectl apply` (client-side) owned, as Flux does since kustomize-controller #486.

An object first made with `kubectl apply` carries managedFields entries of the managers
`kubectl-client-side-apply` and `before-first-apply` (operation Update). A server-side apply of ours
next to them shares those fields, so a label Git no longer declares would stay forever. Before our
first apply, their entries are merged into our own Apply entry with one JSON patch (guarded by the
resourceVersion); our apply then removes what Git does not declare. Entries of other managers
(controllers, `kubectl label`, `kubectl edit`) are left untouched.
"""

from __future__ import annotations

import copy

CLIENT_SIDE_MANAGERS = (("kubectl-client-side-apply", "Update"), ("before-first-apply", "Update"))


def merge_fields(into: dict, other: dict) -> None:
    """Union of two FieldsV1 sets, in place."""
    for key, value in other.items():
        if isinstance(value, dict):
            merge_fields(into.setdefault(key, {}), value)
        else:
            into[key] = value


def _client_side(entry: dict) -> bool:
    return (entry.get("manager"), entry.get("operation")) in CLIENT_SIDE_MANAGERS and not entry.get("subresource")


def client_side_fields(live: dict) -> dict:
    """The union of the FieldsV1 sets client-side `kubectl apply` holds on the main resource ({} if none)."""
    merged: dict = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if _client_side(entry):
            merge_fields(merged, entry.get("fieldsV1") or {})
    return merged


def takeover_patch(live: dict, manager: str) -> list[dict] | None:
    """A JSON patch moving the client-side managers' fields into `manager`'s Apply entry, or None when
    the object has no such entries."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    taken = [e for e in entries if _client_side(e)]
    if not taken:
        return None
    ours = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"
                 and not e.get("subresource")), None)
    fields = copy.deepcopy((ours or {}).get("fieldsV1") or {})
    for entry in taken:
        merge_fields(fields, entry.get("fieldsV1") or {})
    merged = {"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields,
              "apiVersion": (ours or taken[0]).get("apiVersion") or live.get("apiVersion"),
              **({"time": (ours or taken[0])["time"]} if (ours or taken[0]).get("time") else {})}
    kept = [e for e in entries if e is not ours and not _client_side(e)]
    version = (live.get("metadata") or {}).get("resourceVersion")
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "replace", "path": "/metadata/managedFields", "value": kept + [merged]}]
