"""Taking over client-side `kubectl apply` fields: the JSON patch, on plain managedFields data."""

from __future__ import annotations

from reconciler.kube.takeover import client_side_fields, takeover_patch

OURS = "healthflow-reconciler"


def live(*entries: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "app", "resourceVersion": "42", "managedFields": list(entries)}}


def entry(manager: str, operation: str, fields: dict, **extra: object) -> dict:
    return {"manager": manager, "operation": operation, "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": fields, **extra}


def test_an_object_without_client_side_apply_entries_needs_no_takeover() -> None:
    assert takeover_patch(live(entry(OURS, "Apply", {"f:data": {}})), OURS) is None


def test_client_side_fields_merge_into_our_apply_entry_guarded_by_the_resource_version() -> None:
    obj = live(entry("kubectl-client-side-apply", "Update", {"f:metadata": {"f:labels": {"f:stale": {}}}}),
               entry(OURS, "Apply", {"f:data": {"f:v": {}}}))

    test, replace = takeover_patch(obj, OURS)

    assert test == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    [merged] = replace["value"]
    assert (merged["manager"], merged["operation"]) == (OURS, "Apply")
    assert merged["fieldsV1"] == {"f:data": {"f:v": {}}, "f:metadata": {"f:labels": {"f:stale": {}}}}


def test_other_managers_entries_are_kept_as_they_are() -> None:
    label = entry("kubectl-label", "Update", {"f:metadata": {"f:labels": {"f:other": {}}}})
    status = entry("kubectl-client-side-apply", "Update", {"f:status": {}}, subresource="status")
    obj = live(entry("before-first-apply", "Update", {"f:data": {}}), label, status)

    _, replace = takeover_patch(obj, OURS)

    assert replace["value"][:2] == [label, status]
    assert replace["value"][2]["fieldsV1"] == {"f:data": {}}


def test_client_side_fields_are_the_union_of_both_kubectl_managers() -> None:
    obj = live(entry("kubectl-client-side-apply", "Update", {"f:data": {"f:a": {}}}),
               entry("before-first-apply", "Update", {"f:data": {"f:b": {}}}),
               entry("kubectl", "Apply", {"f:data": {"f:c": {}}}))

    assert client_side_fields(obj) == {"f:data": {"f:a": {}, "f:b": {}}}
