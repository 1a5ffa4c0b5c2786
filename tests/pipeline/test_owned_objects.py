"""The object as we apply it (`ownership.owned`): labelled as its stack's, made once, the render untouched."""

from __future__ import annotations

import json

from reconciler.objects import K8sObject
from reconciler.pipeline.ownership import OWNER_ANNOTATION, OWNER_LABEL, owned


def _rendered() -> K8sObject:
    return K8sObject({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
                      "metadata": {"name": "settings", "namespace": "apps", "labels": {"app": "web"}}}, stack="web")


def test_the_applied_object_carries_the_owner_label_and_annotation_beside_its_own_labels() -> None:
    applied = owned("prod", _rendered())

    labels = applied.manifest["metadata"]["labels"]
    assert labels["app"] == "web" and labels[OWNER_LABEL]
    assert applied.manifest["metadata"]["annotations"][OWNER_ANNOTATION] == "prod/web"
    assert applied.manifest["data"] == {"k": "v"}


def test_the_rendered_object_is_left_as_rendered() -> None:
    rendered = _rendered()

    owned("prod", rendered)

    assert rendered.manifest["metadata"] == {"name": "settings", "namespace": "apps", "labels": {"app": "web"}}


def test_the_applied_object_is_made_once_per_rendered_object_and_environment() -> None:
    """It keeps the hashes worked out for it: a later pass over the same render does not work them out again."""
    rendered = _rendered()

    assert owned("prod", rendered) is owned("prod", rendered)
    assert owned("staging", rendered).manifest["metadata"]["annotations"][OWNER_ANNOTATION] == "staging/web"


def test_the_applied_object_is_encoded_once_as_the_json_the_api_server_is_sent() -> None:
    """The size check, the dry run and the apply send one encoding, not one each."""
    applied = owned("prod", _rendered())

    body = applied.encoded()

    assert json.loads(body) == applied.manifest
    assert b" " not in body  # compact: the size judged is the size sent
    assert applied.encoded() is body
