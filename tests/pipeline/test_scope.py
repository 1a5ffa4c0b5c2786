"""Object identity from the kind's scope, on plain rendered objects (no cluster)."""

from __future__ import annotations

import pytest

from reconciler.config import EnvironmentConfig
from reconciler.errors import ManifestError
from reconciler.objects import K8sObject
from reconciler.pipeline.scope import scope_lookup, scoped_objects


def env(**stack: object) -> EnvironmentConfig:
    return EnvironmentConfig.model_validate({"name": "dev", "stacks": [{"name": "app", "path": "app", **stack}]})


def obj(api_version: str, kind: str, namespace: str | None = None) -> K8sObject:
    metadata = {"name": "x", **({"namespace": namespace} if namespace else {})}
    return K8sObject({"apiVersion": api_version, "kind": kind, "metadata": metadata}, stack="app",
                     source_file="app/x.yaml")


def crd(group: str, kind: str, scope: str) -> K8sObject:
    return K8sObject({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                      "metadata": {"name": f"{kind.lower()}s.{group}"},
                      "spec": {"group": group, "scope": scope, "names": {"kind": kind}}}, stack="app")


def test_a_cluster_scoped_object_loses_its_namespace() -> None:
    role = obj("rbac.authorization.k8s.io/v1", "ClusterRole", "somewhere")

    [scoped] = scoped_objects(env(), "app", [role], scope_lookup([role], None))

    assert scoped.id.namespace == "" and "namespace" not in scoped.manifest["metadata"]
    assert role.manifest["metadata"]["namespace"] == "somewhere"  # the parsed object is never changed


def test_a_crd_in_the_render_decides_the_scope_of_its_kind() -> None:
    issuer = obj("cert-manager.io/v1", "ClusterIssuer", "somewhere")
    objects = [crd("cert-manager.io", "ClusterIssuer", "Cluster"), issuer]

    scoped = scoped_objects(env(), "app", objects, scope_lookup(objects, None))

    assert scoped[1].id.namespace == ""


def test_discovery_decides_a_kind_no_rendered_crd_defines() -> None:
    widget = obj("example.test/v1", "Widget", "somewhere")

    [scoped] = scoped_objects(env(), "app", [widget], scope_lookup([widget], lambda av, kind: False))

    assert scoped.id.namespace == ""


def test_a_namespaced_object_without_a_namespace_takes_the_stacks_default() -> None:
    config = obj("v1", "ConfigMap")

    [scoped] = scoped_objects(env(defaultNamespace="apps"), "app", [config], scope_lookup([config], None))

    assert scoped.id.namespace == "apps"


def test_a_namespaced_object_without_a_namespace_or_a_default_names_the_file_and_the_fix() -> None:
    config = obj("v1", "ConfigMap")

    with pytest.raises(ManifestError, match=r"ConfigMap 'x' \(app/x.yaml\) is namespaced but has no namespace"):
        scoped_objects(env(), "app", [config], scope_lookup([config], None))


def test_an_unknown_kind_keeps_its_identity_as_written() -> None:
    widget = obj("example.test/v1", "Widget")

    [scoped] = scoped_objects(env(), "app", [widget], scope_lookup([widget], None))

    assert scoped is widget
