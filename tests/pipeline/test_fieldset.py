"""Fields we own that Git dropped, read from managedFields (plain data, no cluster)."""

from __future__ import annotations

from reconciler.pipeline.fieldset import MISSING, lookup, owned_fields, removed_paths

MANAGER = "healthflow-reconciler"


def live_with(fields: dict, manager: str = MANAGER, operation: str = "Apply", **extra: object) -> dict:
    entry = {"manager": manager, "operation": operation, "fieldsType": "FieldsV1", "fieldsV1": fields, **extra}
    return {"metadata": {"managedFields": [entry]}}


def test_only_our_apply_entries_on_the_main_resource_count() -> None:
    live = {"metadata": {"managedFields": [
        {"manager": MANAGER, "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}}}},
        {"manager": MANAGER, "operation": "Apply", "subresource": "status", "fieldsV1": {"f:status": {}}},
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {"f:b": {}}}},
    ]}}

    assert owned_fields(live, MANAGER) == {"f:data": {"f:a": {}}}


def test_a_label_git_no_longer_sets_is_a_removed_path() -> None:
    fields = {"f:metadata": {"f:labels": {"f:team": {}, "f:tier": {}}}}

    removed = removed_paths(fields, {"metadata": {"labels": {"tier": "web"}}})

    assert [r.path for r in removed] == ["metadata.labels.team"]
    assert lookup({"metadata": {"labels": {"team": "x"}}}, removed[0].steps) == "x"


def test_a_whole_block_removed_is_reported_once_at_its_root() -> None:
    container = {".": {}, "f:name": {}, "f:image": {},
                 "f:lifecycle": {".": {}, "f:preStop": {".": {}, "f:exec": {"f:command": {}}}}}
    fields = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"main"}': container}}}}}
    desired = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "a"}]}}}}

    assert [r.path for r in removed_paths(fields, desired)] == ["spec.template.spec.containers[main].lifecycle"]


def test_list_items_are_matched_by_their_merge_keys_with_defaulted_protocol() -> None:
    fields = {"f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}},
                                     'k:{"port":443,"protocol":"TCP"}': {".": {}, "f:port": {}}}}}
    desired = {"spec": {"ports": [{"port": "80"}]}}

    assert [r.path for r in removed_paths(fields, desired)] == ["spec.ports[443]"]


def test_set_items_and_explicit_nulls_are_removals() -> None:
    fields = {"f:metadata": {"f:finalizers": {'v:"a"': {}, 'v:"b"': {}}}, "f:data": {"f:x": {}, "f:y": {}}}
    desired = {"metadata": {"finalizers": ["a"]}, "data": {"x": None, "y": "1"}}

    assert sorted(r.path for r in removed_paths(fields, desired)) == ["data.x", "metadata.finalizers[b]"]


def test_nothing_is_removed_when_git_sets_everything_we_own() -> None:
    fields = {"f:apiVersion": {}, "f:kind": {}, "f:status": {"f:x": {}}, "f:data": {"f:a": {}}}

    assert removed_paths(fields, {"data": {"a": "1"}}) == []


def test_lookup_of_an_absent_path_is_missing() -> None:
    removed = removed_paths({"f:data": {"f:a": {}}}, {"data": {}})

    assert lookup({"data": {}}, removed[0].steps) is MISSING
