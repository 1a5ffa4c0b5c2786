"""Only what Git sets is compared, with Kubernetes' equivalences; Secret values never show."""

from __future__ import annotations

import dataclasses

from reconciler.objects import K8sObject
from reconciler.pipeline.diff import MASK, compare, desired_hash, mask_manifest, object_hash, project


def deployment(**container: object) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"template": {"spec": {"containers": [{"name": "web", **container}]}}}}


def live_of(desired: dict, **container: object) -> dict:
    live = deployment(**container)
    live["metadata"].update({"uid": "1", "resourceVersion": "9", "generation": 2})
    live["spec"]["replicas"] = 1  # a server default Git does not set
    live["status"] = {"readyReplicas": 1}
    return live


def test_server_defaults_are_not_drift() -> None:
    desired = deployment(image="nginx:1.27")
    live = live_of(desired, image="nginx:1.27", imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/x")
    assert compare(desired, live) == []


def test_equal_quantities_in_other_units_are_not_drift() -> None:
    desired = deployment(resources={"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1.5"}})
    live = live_of(desired, resources={"requests": {"cpu": "1", "memory": "1024Mi"}, "limits": {"cpu": "1500m"}})
    assert compare(desired, live) == []


def test_ports_match_by_number_with_default_protocol_tcp() -> None:
    desired = deployment(ports=[{"containerPort": 8080}])
    live = live_of(desired, ports=[{"containerPort": 8080, "protocol": "TCP"}])
    assert compare(desired, live) == []


def test_int_and_string_ports_are_equal() -> None:
    desired = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"port": 80, "targetPort": "8080"}]}}
    live = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    assert compare(desired, live) == []


def test_a_changed_image_is_reported_with_its_path() -> None:
    desired = deployment(image="nginx:1.27")
    [change] = compare(desired, live_of(desired, image="nginx:1.25"))
    assert (change.path, change.desired, change.live) == ("spec.template.spec.containers[web].image",
                                                         "nginx:1.27", "nginx:1.25")


def test_a_removed_label_in_live_is_drift() -> None:
    desired = deployment(image="x:1")
    live = live_of(desired, image="x:1")
    live["metadata"]["labels"] = {}
    assert [c.path for c in compare(desired, live)] == ["metadata.labels.app"]


def test_secret_string_data_equals_its_base64_data_and_values_are_masked() -> None:
    desired = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "s3cret"}}
    same = {"metadata": {"name": "db"}, "data": {"password": "czNjcmV0"}}
    other = {"metadata": {"name": "db"}, "data": {"password": "b2xk"}}
    assert compare(desired, same) == []
    [change] = compare(desired, other)
    assert (change.desired, change.live) == (MASK, MASK)
    assert "s3cret" not in repr(mask_manifest(desired))


def test_project_keeps_only_the_fields_git_sets() -> None:
    desired = deployment(image="x:1")
    server = live_of(desired, image="x:1", imagePullPolicy="Always")
    projected = project(desired, server)
    assert projected["spec"] == {"template": {"spec": {"containers": [{"name": "web", "image": "x:1"}]}}}


def test_an_objects_kept_hash_is_its_manifests_hash_under_each_key() -> None:
    obj = K8sObject({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"v": "1"}})
    other = dataclasses.replace(obj, manifest={**obj.manifest, "data": {"v": "2"}})

    hashes = [object_hash(o, key) for o in (obj, other) for key in (b"", b"one", b"two")]

    assert hashes == [desired_hash(o.manifest, key) for o in (obj, other) for key in (b"", b"one", b"two")]
    assert len(set(hashes)) == 6
    assert object_hash(obj, b"one") is object_hash(obj, b"one")  # worked out once
